from datetime import timedelta
from pathlib import Path

import pytest

from hearth.sequences import SequenceConfigError, load_sequence, load_sequences, parse_duration

HEAD = "name: x\ntrigger_table: t\ntrigger_time: c\n"
STEP = "steps:\n  - {name: a, delay: 1h, template: t}\n"


def test_the_three_shipped_sequences_load() -> None:
    sequences = load_sequences()
    assert set(sequences) == {"abandoned_cart", "replenishment", "winback"}
    cart = sequences["abandoned_cart"]
    assert [s.delay for s in cart.steps] == [timedelta(hours=1), timedelta(hours=24), timedelta(hours=72)]
    assert cart.step("last_chance").discount is not None
    assert [s.when["lapse_tier"] for s in sequences["winback"].steps] == ["skipped_once", "at_risk", "churned"]
    assert sorted(s.priority for s in sequences.values()) == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ntrigger_table: t\ntrigger_time: c\nsteps: []\n", "'steps' must be a non-empty list"),
        (
            "name: x\ntrigger_table: t\ntrigger_time: c\nsteps:\n  - {name: a, delay: soon, template: t}\n",
            "is not a duration",
        ),
        (
            HEAD + "holdout_share: 1.5\n" + STEP,
            "holdout_share",
        ),
        (
            HEAD + "exit_when: [never]\n" + STEP,
            "unknown exit_when",
        ),
        (
            "name: y\ntrigger_table: t\ntrigger_time: c\nsteps:\n  - {name: a, delay: 1h, template: t}\n",
            "must match the file name",
        ),
        ("name: x\ntrigger_time: c\nsteps:\n  - {name: a, delay: 1h, template: t}\n", "'trigger_table' is required"),
        ("name: x\ntrigger_table: t\ntrigger_time: c\nsteps:\n  - {name: a, delay: 1h, templat: t}\n", "unknown key"),
    ],
)
def test_a_bad_sequence_file_names_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.yml"
    path.write_text(text)
    with pytest.raises(SequenceConfigError, match=message) as info:
        load_sequence(path)
    assert "x.yml" in str(info.value)


def test_durations() -> None:
    assert parse_duration("90m", "w") == timedelta(minutes=90)
    assert parse_duration("1.5d", "w") == timedelta(days=1.5)
