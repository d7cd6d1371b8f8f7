import pytest

from robot_parl import typed_config
from robot_parl.rl.config import ParlConfig
from robot_parl.runtime.local_session import SessionConfig
from robot_parl.typed_config import ConfigError


def test_defaults_are_the_papers():
    cfg = ParlConfig()
    assert (cfg.num_samples, cfg.top_k, cfg.local_steps, cfg.step_size) == (32, 10, 10, 3e-4)
    c = cfg.critic
    assert (c.ensemble_size, c.target_heads, c.gamma, c.polyak, c.lr, c.batch_size, c.cql_alpha) == (
        10, 2, 0.99, 5e-3, 3e-4, 256, 0.005)


@pytest.mark.parametrize("overrides, key, expected", [
    (["parl.top_k=40"], "parl.top_k", "num_samples=16"),
    (["parl.step_size=-1"], "parl.step_size", "finite number >= 0"),
    (["parl.critic.ensemble_sise=3"], "parl.critic.ensemble_sise", "unknown key"),
    (["parl.num_samples=eight"], "parl.num_samples", "an integer"),
    (["parl.reduce=max"], "parl.reduce", "one of ['mean', 'min']"),
    (["parl.critic.gamma=1.5"], "parl.critic.gamma", "[0, 1)"),
    (["task.min_distance=1.9"], "task.min_distance", "max_distance"),
    (["policy.kind=transformer"], "policy.kind", "diffusion"),
    (["online.num_envs=true"], "online.num_envs", "an integer"),
    (["env=lift"], "env", "'pick'"),
    (["tabletop.expert.hesitation=1.0"], "tabletop.expert.hesitation", "[0, 1)"),
])
def test_bad_values_fail_at_load_naming_the_key(overrides, key, expected):
    with pytest.raises(ConfigError) as err:
        typed_config.load(SessionConfig, overrides=overrides)
    assert err.value.key == key
    assert expected in str(err.value)


def test_partial_sections_layer_over_their_defaults(tmp_path):
    default = SessionConfig()
    cfg = typed_config.load(SessionConfig, overrides=["parl.schedule.offline_steps=7", "parl.critic.lr=0.001"])
    assert cfg.parl.schedule.offline_steps == 7 and cfg.parl.critic.lr == 0.001
    assert cfg.parl.num_samples == default.parl.num_samples  # the session's value, not ParlConfig's 32
    assert cfg.parl.critic.hidden_dims == default.parl.critic.hidden_dims


def test_yaml_round_trip_and_cli_overrides_win(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("seed: 3\nparl:\n  top_k: 2\n")
    cfg = typed_config.load(SessionConfig, path, ["seed=5", "parl.critic.lr=1e-3"])
    assert cfg.seed == 5 and cfg.parl.top_k == 2
    assert cfg.parl.critic.lr == 1e-3  # YAML 1.1 reads "1e-3" as a string; it is still a number here
    typed_config.save(cfg, tmp_path / "resolved.yaml")
    again = typed_config.load(SessionConfig, tmp_path / "resolved.yaml")
    assert again == cfg


def test_missing_file_and_malformed_override():
    with pytest.raises(ConfigError, match="does not exist"):
        typed_config.load(SessionConfig, "/nonexistent.yaml")
    with pytest.raises(ConfigError, match="dotted.key=value"):
        typed_config.load(SessionConfig, overrides=["seed"])
    with pytest.raises(ConfigError, match="parl.critic.lr.*expected a number"):
        typed_config.load(SessionConfig, overrides=["parl.critic.lr=fast"])
