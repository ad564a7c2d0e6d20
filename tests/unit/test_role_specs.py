"""The role's defaults and its argument specs describe the same variables."""

from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "git_deploy"


def test_every_default_is_documented_and_every_documented_option_has_a_default():
    defaults = set(yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()))
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    documented = set()
    for entry in specs.values():
        documented |= set(entry["options"])
    assert defaults - documented == set()
    assert documented - defaults == {"git_deploy_root"}  # per host, from the inventory


def test_every_variable_uses_the_role_prefix():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    for entry in specs.values():
        assert all(name.startswith("git_deploy_") for name in entry["options"])
