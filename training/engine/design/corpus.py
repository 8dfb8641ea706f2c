"""A pretraining sample corpus the project writes: short stories with real variety.

Each story combines characters, places, objects, weather, goals and endings, in
several sentence shapes (narration, dialogue, questions, lists, reasons), so a held-out
share measures what a model learned about words and grammar, not one memorised
template. Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

NAMES = [
    "Mia",
    "Tom",
    "Lena",
    "Omar",
    "Sara",
    "Ben",
    "Nora",
    "Leo",
    "Ava",
    "Sam",
    "Ivy",
    "Max",
    "Zoe",
    "Eli",
    "Ruth",
    "Finn",
    "Maya",
    "Jack",
    "Lucy",
    "Theo",
]
ANIMALS = [
    "cat",
    "dog",
    "fox",
    "owl",
    "rabbit",
    "bear",
    "duck",
    "horse",
    "mouse",
    "frog",
    "goat",
    "hen",
    "deer",
    "wolf",
    "sheep",
]
PLACES = [
    "the park",
    "the river",
    "the old mill",
    "the market",
    "the forest",
    "the beach",
    "the hill",
    "the garden",
    "the school",
    "the library",
    "the bakery",
    "the farm",
    "the harbour",
    "the station",
    "the village square",
]
THINGS = [
    "a red ball",
    "a small key",
    "a blue kite",
    "a wooden box",
    "a shiny coin",
    "an old map",
    "a warm hat",
    "a paper boat",
    "a basket of apples",
    "a lost letter",
    "a green umbrella",
    "a silver bell",
    "a little drum",
    "a jar of honey",
    "a broken clock",
]
WEATHER = [
    "It was sunny",
    "It was raining",
    "The wind was cold",
    "Snow covered the ground",
    "The sky was grey",
    "It was a warm evening",
    "Fog hid the road",
    "The morning was bright",
]
FEELINGS = ["happy", "sad", "curious", "tired", "brave", "worried", "excited", "calm", "proud"]
VERBS = [
    "found",
    "carried",
    "painted",
    "lost",
    "shared",
    "fixed",
    "hid",
    "washed",
    "bought",
    "built",
    "opened",
    "dropped",
]
GOALS = [
    "to find a friend",
    "to get home before dark",
    "to learn a new song",
    "to help an old neighbour",
    "to win the race",
    "to bake a cake",
    "to climb the tall tree",
    "to catch a fish",
    "to see the stars",
]
ENDINGS = [
    "In the end, everyone laughed together.",
    "They went home and slept well.",
    "From that day on, they were good friends.",
    "It was the best day of the summer.",
    "Nobody forgot that afternoon.",
    "Then it was time for dinner.",
    "The next morning, they did it again.",
]


def _sentence(rng: random.Random, hero: str, friend: str) -> str:
    animal, place, thing = rng.choice(ANIMALS), rng.choice(PLACES), rng.choice(THINGS)
    shapes = [
        f"{hero} {rng.choice(VERBS)} {thing} near {place}.",
        f'"Look at the {animal}!" said {friend}.',
        f"{hero} felt {rng.choice(FEELINGS)} because {friend} {rng.choice(VERBS)} {thing}.",
        f"Where did the {animal} go? {hero} looked behind {place}.",
        f"{friend} wanted {rng.choice(GOALS)}, so {hero} came along.",
        f"At {place}, they saw a {rng.choice(FEELINGS)} {animal} and {thing}.",
        f"{rng.choice(WEATHER)}, but {hero} and {friend} walked to {place}.",
        f'"Can we keep {thing}?" asked {hero}. "{rng.choice(["Yes", "No", "Maybe"])}," '
        f"said {friend}.",
        f"First they {rng.choice(VERBS)} {thing}, then they ran to {place}.",
        f"The {animal} was {rng.choice(FEELINGS)}, and {hero} gave it {thing}.",
    ]
    return rng.choice(shapes)


def story(rng: random.Random) -> str:
    hero, friend = rng.sample(NAMES, 2)
    opening = (
        f"{rng.choice(WEATHER)}. {hero} went to {rng.choice(PLACES)} with {friend}. "
        f"{hero} wanted {rng.choice(GOALS)}."
    )
    middle = " ".join(_sentence(rng, hero, friend) for _ in range(rng.randint(2, 5)))
    return f"{opening} {middle} {rng.choice(ENDINGS)}"


def stories(count: int, seed: int = 0) -> Iterator[str]:
    rng = random.Random(seed)
    for _ in range(count):
        yield story(rng)


def vocabulary(texts: list[str]) -> set[str]:
    """The lower-cased words of ``texts``, punctuation stripped."""
    return {w.strip('.,!?"').lower() for text in texts for w in text.split()} - {""}
