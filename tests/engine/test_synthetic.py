"""Synthetic rows from templates: slots from a table and lists, seeded, distinct."""

import pytest

from training.engine.data import synthetic
from training.engine.data.synthetic import Recipe, RecipeError, check, generate

TABLE = "country,capital\nFrance,Paris\nJapan,Tokyo\nPeru,Lima"


def recipe(**changes) -> Recipe:
    fields = {
        "instruction": "Capital of {country}, {style}?",
        "output": "{capital}",
        "table": TABLE,
        "lists": "style: briefly | fully",
        "rows": 6,
        "seed": 1,
    }
    fields.update(changes)
    return check(Recipe(**fields))


def test_table_values_stay_together_and_lists_combine_freely():
    rows = generate(recipe())
    assert len(rows) == 6
    pairs = {(r["instruction"], r["output"]) for r in rows}
    assert len(pairs) == 6  # every combination once
    capitals = {"France": "Paris", "Japan": "Tokyo", "Peru": "Lima"}
    for row in rows:
        country = row["instruction"].split("of ")[1].split(",")[0]
        assert row["output"] == capitals[country]
    assert {r["instruction"].rsplit(" ", 1)[1] for r in rows} == {"briefly?", "fully?"}


def test_the_same_seed_gives_the_same_rows_and_another_seed_another_order():
    assert generate(recipe(rows=4)) == generate(recipe(rows=4))
    assert generate(recipe(rows=6, seed=1)) != generate(recipe(rows=6, seed=2))
    assert generate(recipe(rows=6), limit=2) == generate(recipe(rows=6))[:2]


def test_lists_alone_and_an_input_template():
    rows = generate(
        recipe(
            table="",
            lists="a: 1 | 2 | 3\nb: x | y",
            instruction="{a}{b}",
            output="{b}{a}",
            input="in {a}",
        )
    )
    assert sorted(r["instruction"] for r in rows) == ["1x", "1y", "2x", "2y", "3x", "3y"]
    assert all(r["output"] == r["instruction"][::-1] for r in rows)
    assert all(r["input"] == "in " + r["instruction"][0] for r in rows)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"output": "{town}"}, "output", "unknown slot {town}"),
        ({"rows": 7}, "rows", "only 6 different rows"),
        ({"rows": 0}, "rows", "between 1 and"),
        ({"rows": synthetic.MAX_ROWS + 1}, "rows", "between 1 and"),
        ({"instruction": "Capital of {country"}, "instruction", "literal brace"),
        ({"instruction": "{country!r}"}, "instruction", "not a slot name"),
        ({"table": "country,capital\nFrance"}, "table", "1 values for 2 columns"),
        ({"table": "country,country\na,b"}, "table", "appears twice"),
        ({"table": "country,capital\n"}, "table", "no rows"),
        ({"lists": "style briefly"}, "lists", "slot: value"),
        ({"lists": "style: |"}, "lists", "no values"),
        ({"lists": "country: A | B"}, "lists", "in the table and in the lists"),
        ({"instruction": " "}, "instruction", "write the instruction"),
    ],
)
def test_bad_recipes_name_the_field_at_fault(changes, field, message):
    with pytest.raises(RecipeError) as caught:
        recipe(**changes)
    assert caught.value.field == field
    assert message in caught.value.message


def test_large_products_are_sampled_without_building_them():
    many = "\n".join(f"s{i}: " + " | ".join(str(v) for v in range(100)) for i in range(5))
    big = check(Recipe(instruction="{s0}{s1}{s2}{s3}{s4}", output="x", lists=many, rows=1000))
    rows = generate(big)
    assert len({r["instruction"] for r in rows}) == 1000
