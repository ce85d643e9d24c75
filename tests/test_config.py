import pytest

from deepatlas.config import list_recipes, load_recipe, parse_value, valid_keys
from deepatlas.errors import UserError


def test_every_shipped_recipe_loads_and_has_a_description():
    recipes = list_recipes()
    assert {"digits", "fashion-mnist", "mnist", "cifar10", "imagenet-resnet50",
            "fashion-mnist-fast", "fashion-mnist-best", "cifar10-fast"} <= set(recipes)
    for name, description in recipes.items():
        assert description, f"recipe {name} has no description"
        assert load_recipe(name).recipe == name


def test_overrides_are_typed():
    config = load_recipe("digits", ["train.epochs=3", "optim.lr=1e-2", "model.width=64",
                                    "train.channels_last=true", "optim.weight_decay=0"])
    assert config.train.epochs == 3 and config.optim.lr == 0.01
    assert config.model["width"] == 64 and config.train.channels_last is True
    assert isinstance(config.optim.weight_decay, float)


def test_switching_model_keeps_only_its_own_options():
    config = load_recipe("digits", ["model.name=resnet", "model.depth=8"])
    assert config.model == {"name": "resnet", "depth": 8}


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "unknown config key 'train.epoch' (did you mean 'train.epochs'?)"),
    ("trian.epochs=3", "did you mean 'train.epochs'?"),
    ("model.widht=3", "did you mean 'model.width'?"),
    ("train.epochs=three", "train.epochs expects an integer, got 'three'"),
    ("train.epochs=2.5", "train.epochs expects an integer"),
    ("optim.lr=fast", "optim.lr expects a number"),
    ("train.channels_last=yes", "train.channels_last expects true or false"),
    ("optim.lr=-0.1", "optim.lr must be > 0"),
    ("train.batch_size=0", "train.batch_size must be >= 1"),
    ("model.dropout=1.0", "model.dropout must be in [0, 1)"),
    ("train.precision=fp8", "train.precision must be one of auto, fp32, bf16, fp16"),
    ("data.name=fashion", "unknown data set (data.name) for task classify-images 'fashion'"),
    ("model.name=resnt", "did you mean 'resnet'?"),
    ("data.val_fraction=1.5", "data.val_fraction must be in [0, 1)"),
    ("epochs", "--set expects KEY=VALUE"),
])
def test_bad_overrides_say_how_to_fix_them(override, message):
    with pytest.raises(UserError) as info:
        load_recipe("digits", [override])
    assert message in str(info.value)


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(UserError) as info:
        load_recipe("digits", ["train.nope=1"])
    for key in ("train.epochs", "optim.lr", "model.width", "data.dir"):
        assert key in str(info.value)
    assert "model.width" in valid_keys("mlp") and "model.depth" in valid_keys("resnet")


def test_unknown_recipe():
    with pytest.raises(UserError, match="unknown recipe 'digit' \\(did you mean 'digits'\\?\\)"):
        load_recipe("digit")


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("/some/path") == "/some/path" and parse_value('"3"') == "3"
