"""The data the repository carries for its tests matches the reference documents it was taken from."""

from __future__ import annotations

import pytest

from tests.data.make_reference import seed_functions
from tests.support import NO_SEEDS, SEEDS, SHARED, SPECS, reference


def test_every_builtin_integration_has_seven_reference_functions():
    assert {ident: len(functions) for ident, functions in reference().items()} == {
        "agora": 7, "cal-com": 7, "goto-webinar": 7, "whereby": 7}


def test_the_carried_specs_are_the_three_official_ones():
    assert sorted(p.name for p in SPECS.iterdir() if p.suffix != ".md") == ["calcom.json", "gotowebinar.yml", "whereby.json"]


@pytest.mark.skipif(not SEEDS.is_dir(), reason=NO_SEEDS)
@pytest.mark.parametrize("ident", ["agora", "cal-com", "goto-webinar", "whereby"])
def test_reference_json_is_in_sync_with_the_seeds(ident):
    text = (SEEDS / f"{ident}.txt").read_text(encoding="utf-8")
    assert seed_functions(text) == reference()[ident], "run: python tests/data/make_reference.py"


@pytest.mark.skipif(not (SHARED / "specs").is_dir(), reason="needs ../shared/specs beside the repository; CI has it")
@pytest.mark.parametrize("name", ["calcom.json", "gotowebinar.yml", "whereby.json"])
def test_carried_specs_are_byte_for_byte_the_published_ones(name):
    assert (SPECS / name).read_bytes() == (SHARED / "specs" / name).read_bytes()
