"""Samples for the tasks our users came with, written by code (offline, deterministic):

- question decomposition: a complex question -> a JSON list of simple sub-questions;
- Korean -> English translation of short sentences;
- a Korean instruction set (arithmetic, capitals, opposites, colours).

Each row is built from templates and word lists with their translations, so the held-out
rows of a validation split ask the same kinds of thing with other words: the pre-filled
short run can learn the form, and the evaluation metrics (valid JSON and JSON equality,
ROUGE-L, exact match) measure it. Korean particles follow the last syllable's final
consonant (은/는, 이/가, 을/를), as the grammar requires.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

TASK_SAMPLE_SIZE = 240
Row = dict[str, str]

# -- question decomposition --------------------------------------------------------------

DECOMPOSE_INSTRUCTION = (
    "Break the question into simple sub-questions that answer it together. "
    "Reply with a JSON list of strings only."
)
CITIES = [
    "Paris", "Tokyo", "Cairo", "Lima", "Oslo", "Seoul", "Madrid", "Berlin", "Nairobi",
    "Toronto", "Sydney", "Mumbai", "Lagos", "Bangkok", "Vienna", "Dublin", "Hanoi", "Quito",
]  # fmt: skip
COUNTRIES = [
    "France", "Japan", "Egypt", "Peru", "Norway", "Korea", "Spain", "Germany", "Kenya",
    "Canada", "Australia", "India", "Nigeria", "Thailand", "Austria", "Ireland", "Vietnam",
]  # fmt: skip
RIVERS = ["Nile", "Amazon", "Danube", "Rhine", "Mekong", "Volga", "Thames", "Seine", "Ganges"]
PEOPLE = ["Ada", "Ben", "Chloe", "Dan", "Eva", "Finn", "Grace", "Hugo", "Iris", "Jon"]
THINGS = ["a bike", "a laptop", "a phone", "a camera", "a guitar", "a tent", "a desk"]


def _two(rng: random.Random, items: list[str]) -> tuple[str, str]:
    a, b = rng.sample(items, 2)
    return a, b


def _decompositions() -> list[Callable[[random.Random], tuple[str, list[str]]]]:
    def population(rng):
        a, b = _two(rng, CITIES)
        return f"Which city has more people, {a} or {b}?", [
            f"How many people live in {a}?",
            f"How many people live in {b}?",
        ]

    def river(rng):
        a, b = _two(rng, RIVERS)
        return f"Is the {a} longer than the {b}?", [
            f"How long is the {a}?",
            f"How long is the {b}?",
        ]

    def capitals(rng):
        a, b = _two(rng, COUNTRIES)
        return f"Is the capital of {a} farther north than the capital of {b}?", [
            f"What is the capital of {a}?",
            f"What is the capital of {b}?",
            "Which of the two capitals is farther north?",
        ]

    def continent(rng):
        a, b = _two(rng, COUNTRIES)
        return f"Are {a} and {b} on the same continent?", [
            f"On which continent is {a}?",
            f"On which continent is {b}?",
        ]

    def language(rng):
        city = rng.choice(CITIES)
        return f"What language is spoken in the country where {city} is?", [
            f"In which country is {city}?",
            "What language is spoken in that country?",
        ]

    def ages(rng):
        a, b = _two(rng, PEOPLE)
        return f"How many years older is {a} than {b}?", [
            f"How old is {a}?",
            f"How old is {b}?",
            "What is the difference between the two ages?",
        ]

    def prices(rng):
        a, b = _two(rng, THINGS)
        person = rng.choice(PEOPLE)
        return f"Can {person} buy {a} and {b} with the money {person} has?", [
            f"How much does {a} cost?",
            f"How much does {b} cost?",
            f"How much money does {person} have?",
        ]

    return [population, river, capitals, continent, language, ages, prices]


def _distinct(makers: list[Callable[[random.Random], tuple]], n: int, seed: int) -> list[tuple]:
    """``n`` (prompt, answer) pairs from randomly chosen makers, no prompt twice."""
    rng = random.Random(seed)
    pairs, seen = [], set()
    for _ in range(100 * n):
        if len(pairs) == n:
            return pairs
        prompt, answer = rng.choice(makers)(rng)
        if prompt not in seen:
            seen.add(prompt)
            pairs.append((prompt, answer))
    if len(pairs) < n:
        raise ValueError(f"these templates give fewer than {n} distinct rows")
    return pairs


def decomposition_rows(n: int, seed: int) -> list[Row]:
    return [
        {
            "instruction": DECOMPOSE_INSTRUCTION,
            "input": question,
            "output": json.dumps(parts, ensure_ascii=False),
        }
        for question, parts in _distinct(_decompositions(), n, seed)
    ]


# -- Korean -----------------------------------------------------------------------------


def has_final_consonant(word: str) -> bool:
    """Whether the last Hangul syllable of ``word`` ends in a consonant (받침)."""
    last = word[-1]
    if not "가" <= last <= "힣":
        raise ValueError(f"{word!r} does not end in a Hangul syllable")
    return (ord(last) - ord("가")) % 28 != 0


def topic(word: str) -> str:
    return word + ("은" if has_final_consonant(word) else "는")


def subject(word: str) -> str:
    return word + ("이" if has_final_consonant(word) else "가")


def obj(word: str) -> str:
    return word + ("을" if has_final_consonant(word) else "를")


# (Korean, English at the start of a sentence)
KO_PEOPLE = [
    ("민수", "Minsu"), ("지영", "Jiyoung"), ("선생님", "The teacher"), ("제 동생", "My brother"),
    ("우리 어머니", "My mother"), ("그 학생", "The student"), ("고양이", "The cat"),
    ("강아지", "The puppy"), ("할머니", "Grandmother"), ("제 친구", "My friend"),
]  # fmt: skip
KO_LIKES = [
    ("사과", "apples"), ("커피", "coffee"), ("책", "books"), ("음악", "music"),
    ("김치", "kimchi"), ("우유", "milk"), ("빵", "bread"), ("축구", "soccer"),
    ("영화", "movies"), ("여름", "summer"),
]  # fmt: skip
KO_FOODS = [
    ("사과", "an apple"), ("빵", "bread"), ("김치", "kimchi"), ("라면", "ramen"),
    ("밥", "rice"), ("떡볶이", "tteokbokki"), ("수박", "watermelon"), ("국수", "noodles"),
]  # fmt: skip
KO_PLACES = [
    ("학교", "school"), ("도서관", "the library"), ("공원", "the park"),
    ("시장", "the market"), ("병원", "the hospital"), ("역", "the station"),
    ("바다", "the sea"), ("교회", "church"),
]  # fmt: skip
KO_SHOPS = [
    ("시장", "the market"), ("편의점", "the convenience store"), ("서점", "the bookstore"),
    ("백화점", "the department store"), ("빵집", "the bakery"),
]  # fmt: skip
KO_BOUGHT = [
    ("책", "a book"), ("우산", "an umbrella"), ("가방", "a bag"), ("꽃", "flowers"),
    ("우유", "milk"), ("모자", "a hat"), ("연필", "a pencil"),
]  # fmt: skip
KO_WEATHER = [
    ("맑습니다", "sunny"), ("춥습니다", "cold"), ("덥습니다", "hot"), ("흐립니다", "cloudy"),
]  # fmt: skip
KO_DAYS = [("오늘", "today"), ("어제", "yesterday")]


def _translations() -> list[Callable[[random.Random], tuple[str, str]]]:
    def likes(rng):
        (ko, en), (ko_o, en_o) = rng.choice(KO_PEOPLE), rng.choice(KO_LIKES)
        return f"{topic(ko)} {obj(ko_o)} 좋아합니다.", f"{en} likes {en_o}."

    def is_at(rng):
        (ko, en), (ko_p, en_p) = rng.choice(KO_PEOPLE), rng.choice(KO_PLACES)
        return f"{subject(ko)} 지금 {ko_p}에 있습니다.", f"{en} is at {en_p} now."

    def goes(rng):
        (ko, en), (ko_p, en_p) = rng.choice(KO_PEOPLE), rng.choice(KO_PLACES)
        return f"{topic(ko)} 매일 {ko_p}에 갑니다.", f"{en} goes to {en_p} every day."

    def ate(rng):
        (ko_d, en_d), (ko_f, en_f) = rng.choice(KO_DAYS), rng.choice(KO_FOODS)
        return f"저는 {ko_d} {obj(ko_f)} 먹었습니다.", f"I ate {en_f} {en_d}."

    def bought(rng):
        (ko_s, en_s), (ko_b, en_b) = rng.choice(KO_SHOPS), rng.choice(KO_BOUGHT)
        return f"저는 {ko_s}에서 {obj(ko_b)} 샀습니다.", f"I bought {en_b} at {en_s}."

    def weather(rng):
        ko_d, (ko_w, en_w) = rng.choice(KO_DAYS)[0], rng.choice(KO_WEATHER)
        if ko_d == "어제":
            ko_w = {"맑습니다": "맑았습니다", "춥습니다": "추웠습니다", "덥습니다": "더웠습니다",
                    "흐립니다": "흐렸습니다"}[ko_w]  # fmt: skip
            return f"어제는 날씨가 {ko_w}", f"The weather was {en_w} yesterday."
        return f"오늘은 날씨가 {ko_w}", f"The weather is {en_w} today."

    def age(rng):
        (ko, en), years = rng.choice(KO_PEOPLE[:6]), rng.randint(5, 80)
        return f"{topic(ko)} {years}살입니다.", f"{en} is {years} years old."

    def wants(rng):
        (ko, en), (ko_p, en_p) = rng.choice(KO_PEOPLE[:6]), rng.choice(KO_PLACES)
        return f"{topic(ko)} {ko_p}에 가고 싶어합니다.", f"{en} wants to go to {en_p}."

    return [likes, is_at, goes, ate, bought, weather, age, wants]


TRANSLATE_INSTRUCTION = "Translate the Korean sentence into English."


def translation_rows(n: int, seed: int) -> list[Row]:
    return [
        {"instruction": TRANSLATE_INSTRUCTION, "input": korean, "output": english}
        for korean, english in _distinct(_translations(), n, seed)
    ]


KO_CAPITALS = [
    ("프랑스", "파리"), ("일본", "도쿄"), ("독일", "베를린"), ("이탈리아", "로마"),
    ("스페인", "마드리드"), ("중국", "베이징"), ("영국", "런던"), ("캐나다", "오타와"),
    ("러시아", "모스크바"), ("이집트", "카이로"), ("호주", "캔버라"), ("태국", "방콕"),
    ("베트남", "하노이"), ("인도", "뉴델리"), ("그리스", "아테네"), ("노르웨이", "오슬로"),
    ("스웨덴", "스톡홀름"), ("케냐", "나이로비"), ("페루", "리마"), ("포르투갈", "리스본"),
]  # fmt: skip
KO_OPPOSITES = [
    ("크다", "작다"), ("높다", "낮다"), ("길다", "짧다"), ("덥다", "춥다"), ("빠르다", "느리다"),
    ("많다", "적다"), ("밝다", "어둡다"), ("쉽다", "어렵다"), ("무겁다", "가볍다"),
    ("넓다", "좁다"), ("두껍다", "얇다"), ("깨끗하다", "더럽다"), ("비싸다", "싸다"),
]  # fmt: skip
KO_COLOURS = [
    ("바나나", "노란색"), ("사과", "빨간색"), ("포도", "보라색"), ("귤", "주황색"),
    ("레몬", "노란색"), ("딸기", "빨간색"), ("오이", "초록색"), ("하늘", "파란색"),
    ("눈", "하얀색"), ("석탄", "검은색"),
]  # fmt: skip


def _korean_instructions() -> list[Callable[[random.Random], tuple[str, str]]]:
    def add(rng):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        return f"{a} 더하기 {b}의 답은 무엇인가요?", f"답은 {a + b}입니다."

    def double(rng):
        a = rng.randint(2, 60)
        return f"{a}의 두 배는 얼마인가요?", f"{a}의 두 배는 {2 * a}입니다."

    def capital(rng):
        country, city = rng.choice(KO_CAPITALS)
        return f"{country}의 수도는 어디인가요?", f"{country}의 수도는 {city}입니다."

    def opposite(rng):
        word, other = rng.choice(KO_OPPOSITES)
        if rng.random() < 0.5:
            word, other = other, word
        return f"'{word}'의 반대말은 무엇인가요?", f"'{word}'의 반대말은 '{other}'입니다."

    def colour(rng):
        thing, colour_ = rng.choice(KO_COLOURS)
        return f"{thing}의 색깔은 무엇인가요?", f"{thing}의 색깔은 {colour_}입니다."

    return [add, double, capital, opposite, colour]


def korean_instruction_rows(n: int, seed: int) -> list[Row]:
    return [
        {"instruction": question, "input": "", "output": answer}
        for question, answer in _distinct(_korean_instructions(), n, seed)
    ]
