import pytest

from cep.rules.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("5s", 5000),
        ("10m", 600_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("0s", 0),
    ],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["5", "5 s", "1.5h", "-1s", "2w", "", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration; write a whole number and a unit"):
        parse_duration(text)


@pytest.mark.parametrize("ms", [250, 5000, 600_000, 7_200_000, 86_400_000, 90_000])
def test_format_duration_round_trips(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms
