"""The other half of the recipes of tests/test_every_recipe.py (see its docstring): the same
check, in a second file so that two pytest-xdist workers share the recipes."""

import pytest

from test_every_recipe import RECIPES, check_recipe


@pytest.mark.parametrize("recipe", RECIPES[1::2])
def test_every_recipe_resumes_exactly_and_stops_cleanly(recipe, cli, tmp_path, monkeypatch):
    check_recipe(recipe, cli, tmp_path, monkeypatch)
