"""Presets, overrides, typed values and one-line errors."""
import pytest

from ganforge.config import MAIN_JOB, Config, dump, from_dict, job_preset, load_config, presets
from ganforge.errors import UserError


def test_defaults_are_the_textbook_dcgan_preset():
    assert load_config().to_dict() == load_config("mnist-dcgan").to_dict()
    cfg = load_config()
    assert (cfg.model.name, cfg.loss, cfg.data.name) == ("dcgan", "nonsaturating", "mnist")


@pytest.mark.parametrize("overrides,preset", [
    ((), MAIN_JOB), (("steps=10", "model.g_width=8"), MAIN_JOB), (("data=mnist",), MAIN_JOB), (("model=dcgan",), MAIN_JOB),
    (("data=folder:my300", "augment=ada"), None), (("model=stylegan",), None), (("data.name=ring",), None)])
def test_a_run_without_a_config_trains_the_main_job_unless_it_picks_other_data_or_family(overrides, preset):
    assert job_preset(None, overrides) == preset
    assert job_preset("mnist-dcgan", overrides) == "mnist-dcgan"
    main = load_config(MAIN_JOB)
    assert main.model.conditional and main.schedule.lr and main.to_dict() != load_config().to_dict()


def test_presets_all_load():
    assert {"mnist-dcgan", "toy-grid", "toy-ring"} <= set(presets())
    for p in presets():
        load_config(p)


def test_overrides_are_typed():
    cfg = load_config("toy-grid", ["loss=wgan-gp", "d_steps=5", "optim.g.lr=1e-4", "ema.enabled=false",
                                   "model.hidden=64", "data.holdout=0.1", "clip=null"])
    assert cfg.loss == "wgan-gp" and cfg.d_steps == 5
    assert cfg.optim.g.lr == 1e-4 and isinstance(cfg.optim.g.lr, float)
    assert cfg.ema.enabled is False and cfg.model.arch.hidden == 64
    assert cfg.data.holdout == 0.1 and cfg.clip is None


def test_yaml_quirk_1e_minus_4_is_a_float(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  g:\n    lr: 1e-4\n")      # PyYAML reads this as a string
    assert load_config(str(p)).optim.g.lr == 1e-4


def test_changing_the_penalty_drops_its_weight():
    assert load_config("toy-grid").penalty.weight == 0.1
    cfg = load_config("toy-grid", ["penalty=gp"])
    assert cfg.penalty.name == "gp" and cfg.penalty.weight is None and cfg.penalty.every is None  # gp's own: 10, 1
    assert load_config("toy-grid", ["penalty=r1"]).penalty.weight == 0.1   # same name: kept


def test_section_shorthand_and_family_switch():
    cfg = load_config(None, ["model=mlp", "data=ring", "penalty=r1"])
    assert cfg.model.name == "mlp" and cfg.data.name == "ring" and cfg.penalty.name == "r1"
    # the dcgan preset sets g_width; switching family drops it instead of failing
    cfg = load_config("mnist-dcgan", ["model=mlp"])
    assert not hasattr(cfg.model.arch, "g_width")


@pytest.mark.parametrize("override,needle", [
    ("optim.g.lrr=1", "did you mean 'optim.g.lr'"),
    ("batchsize=3", "did you mean 'batch_size'"),
    ("model.g_widht=3", "did you mean 'model.g_width'"),
    ("los=hinge", "did you mean 'loss'"),
])
def test_unknown_key_names_the_closest(override, needle):
    with pytest.raises(UserError) as e:
        load_config(None, [override])
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("override,needle", [
    ("batch_size=-3", "batch_size must be an integer >= 1, got '-3'"),
    ("batch_size=2.5", "batch_size must be an integer"),
    ("optim.g.lr=fast", "optim.g.lr must be a number > 0"),
    ("optim.g.lr=0", "optim.g.lr must be a number > 0"),
    ("ema.enabled=maybe", "ema.enabled must be true or false"),
    ("loss=hinj", "did you mean 'hinge'"),
    ("data.channels=2", "data.channels must be one of 1, 3"),
    ("optim.d.beta1=1.0", "optim.d.beta1 must be a number >= 0 and < 1"),
    ("steps=nan", "steps must be an integer"),
    ("optim.g.lr=inf", "optim.g.lr must be a number > 0"),
    ("novalue", "expected key=value"),
    ("steps.x=3", "steps is a value, not a section"),
    ("optim=adam", "optim is a section"),
])
def test_bad_values_say_what_is_allowed(override, needle):
    with pytest.raises(UserError) as e:
        load_config(None, [override])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_preset_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="no config file or preset named 'nope'"):
        load_config("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(str(bad))
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        load_config(str(lst))


def test_dump_round_trip():
    cfg = load_config("toy-ring", ["optim.g.lr=3e-4", "name=x", "penalty.weight=0.5"])
    back = from_dict(__import__("yaml").safe_load(dump(cfg)))
    assert back.to_dict() == cfg.to_dict()
    assert isinstance(back, Config)


def test_get_dotted():
    cfg = load_config()
    assert cfg.get("optim.d.lr") == cfg.optim.d.lr
    assert cfg.get("model.g_width") == 64


def test_docs_config_page_matches_the_schema():
    from pathlib import Path
    from ganforge.cli.config import key_table
    page = (Path(__file__).parents[1] / "docs" / "config.md").read_text()
    assert page.endswith(key_table()), "docs/config.md is stale: regenerate it with ganforge config --keys"
