import pytest

from robot_parl import typed_config
from robot_parl.rl.config import ParlConfig
from robot_parl.runtime.local_run import LocalRunConfig
from robot_parl.typed_config import ConfigError


def test_defaults_are_the_papers_and_the_critic_must_earn_trust():
    cfg = ParlConfig()
    assert (cfg.num_samples, cfg.top_k, cfg.local_steps, cfg.step_size) == (32, 10, 10, 3e-4)
    assert (cfg.trust_region, cfg.pessimism, cfg.trust_min_z) == (0.0, 0.0, 2.0)  # rl/trust.py decides when it acts
    c = cfg.critic
    assert (c.ensemble_size, c.target_heads, c.gamma, c.polyak, c.lr, c.batch_size, c.cql_alpha) == (
        10, 2, 0.99, 5e-3, 3e-4, 256, 0.005)


@pytest.mark.parametrize("overrides, key, expected", [
    (["parl.top_k=40"], "parl.top_k", "num_samples=16"),
    (["parl.step_size=-1"], "parl.step_size", "finite number >= 0"),
    (["parl.critic.ensemble_sise=3"], "parl.critic.ensemble_sise", "unknown key"),
    (["parl.num_samples=eight"], "parl.num_samples", "an integer"),
    (["parl.pessimism=-1"], "parl.pessimism", "a finite number >= 0"),
    (["parl.trust_region=-0.5"], "parl.trust_region", "multiple of the candidates' spread"),
    (["parl.critic.gamma=1.5"], "parl.critic.gamma", "[0, 1)"),
    (["task.min_distance=1.9"], "task.min_distance", "max_distance"),
    (["policy.kind=transformer"], "policy.kind", "diffusion"),
    (["online.num_envs=true"], "online.num_envs", "an integer"),
    (["env=lift"], "env", "'pick'"),
    (["tabletop.expert.hesitation=1.0"], "tabletop.expert.hesitation", "[0, 1)"),
])
def test_bad_values_fail_at_load_naming_the_key(overrides, key, expected):
    with pytest.raises(ConfigError) as err:
        typed_config.load(LocalRunConfig, overrides=overrides)
    assert err.value.key == key
    assert expected in str(err.value)


def test_partial_sections_layer_over_their_defaults(tmp_path):
    default = LocalRunConfig()
    cfg = typed_config.load(LocalRunConfig, overrides=["parl.schedule.offline_steps=7", "parl.critic.lr=0.001"])
    assert cfg.parl.schedule.offline_steps == 7 and cfg.parl.critic.lr == 0.001
    assert cfg.parl.num_samples == default.parl.num_samples  # the session's value, not ParlConfig's 32
    assert cfg.parl.critic.hidden_dims == default.parl.critic.hidden_dims


def test_yaml_round_trip_and_cli_overrides_win(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("seed: 3\nparl:\n  top_k: 2\n")
    cfg = typed_config.load(LocalRunConfig, path, ["seed=5", "parl.critic.lr=1e-3"])
    assert cfg.seed == 5 and cfg.parl.top_k == 2
    assert cfg.parl.critic.lr == 1e-3  # YAML 1.1 reads "1e-3" as a string; it is still a number here
    typed_config.save(cfg, tmp_path / "resolved.yaml")
    again = typed_config.load(LocalRunConfig, tmp_path / "resolved.yaml")
    assert again == cfg


def test_missing_file_and_malformed_override():
    with pytest.raises(ConfigError, match="does not exist"):
        typed_config.load(LocalRunConfig, "/nonexistent.yaml")
    with pytest.raises(ConfigError, match="dotted.key=value"):
        typed_config.load(LocalRunConfig, overrides=["seed"])
    with pytest.raises(ConfigError, match="parl.critic.lr.*expected a number"):
        typed_config.load(LocalRunConfig, overrides=["parl.critic.lr=fast"])


def test_a_vla_card_and_the_session_never_silently_override_each_other():
    from robot_parl.runtime.config import FinetuneConfig

    card = ["policy.kind=vla", "policy.vla.parl={num_samples: 8, top_k: 4}"]
    cfg = typed_config.load(FinetuneConfig, overrides=card + ["parl.local_steps=3"])
    resolved = cfg.resolved_parl()
    assert (resolved.num_samples, resolved.top_k, resolved.local_steps) == (8, 4, 3)  # each from its owner
    same = typed_config.load(FinetuneConfig, overrides=card + ["parl.top_k=4"]).resolved_parl()
    assert same.top_k == 4  # agreeing is no conflict
    with pytest.raises(ConfigError, match="parl.num_samples.*16 conflicts with policy.vla.parl.num_samples = 8"):
        typed_config.load(FinetuneConfig, overrides=card + ["parl.num_samples=16"]).resolved_parl()
    session = typed_config.load(LocalRunConfig, overrides=card + ["parl.top_k=2"])
    with pytest.raises(ConfigError, match="parl.top_k.*2 conflicts with policy.vla.parl.top_k = 4"):
        session.method_parl()
