"""The execution environment AWX runs the rollouts in: execution-environment.yml
(ansible-builder schema v3) and the collection's meta/execution-environment.yml.

`ansible-builder create` only writes a build context (no container engine, no network):
it is run for real, on the definition as it is and on a copy next to a freshly built
collection tarball."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EE_FILE = REPO / "execution-environment.yml"
BUILDER = BIN / "ansible-builder"
# The compatibility toolchain (make compat) has neither ansible-builder nor bindep.
needs_builder = pytest.mark.skipif(not BUILDER.exists(), reason="ansible-builder is not installed")
V3_KEYS = {"version", "images", "dependencies", "options", "additional_build_files", "additional_build_steps",
           "build_arg_defaults"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def collection_version() -> str:
    return load(REPO / "galaxy.yml")["version"]


def builder_create(ee_file: Path, context: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(BUILDER), "create", "--file", str(ee_file), "--context", str(context),
         "--output-filename", "Containerfile", "-v3"],
        cwd=ee_file.parent, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_schema_v3_with_the_collection_and_its_dependencies():
    ee = load(EE_FILE)
    assert ee["version"] == 3
    assert set(ee) <= V3_KEYS
    assert ee["images"]["base_image"]["name"]
    deps = ee["dependencies"]
    assert {"python_interpreter", "ansible_core", "ansible_runner", "galaxy", "python", "system"} <= set(deps)
    assert deps["ansible_core"]["package_pip"].startswith("ansible-core")
    assert deps["ansible_runner"]["package_pip"].startswith("ansible-runner")
    assert (deps["python"], deps["system"]) == ("requirements.txt", "bindep.txt")
    # The collection comes from the tarball `make build` writes, copied into the build context.
    [collection] = [c for c in deps["galaxy"]["collections"] if "gitdeploy" in c["name"]]
    assert collection == {"name": f"collections/gitdeploy-rollout-{collection_version()}.tar.gz", "type": "file"}, \
        "keep the tarball name in execution-environment.yml in step with galaxy.yml's version"
    assert ee["additional_build_files"] == [{"src": ".build/dist/gitdeploy-rollout-*.tar.gz", "dest": "collections"}]
    assert f"gitdeploy-rollout-ee:{collection_version()}" in ee["options"]["tags"]


def test_referenced_files_exist_and_the_collection_declares_them():
    ee = load(EE_FILE)
    for name in (ee["dependencies"]["python"], ee["dependencies"]["system"]):
        assert (REPO / name).is_file(), name
    # ansible-builder's introspection reads meta/execution-environment.yml of every
    # collection it installs; its paths are relative to the collection root.
    meta = load(REPO / "meta" / "execution-environment.yml")
    assert meta["version"] == 1
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    for name in meta["dependencies"].values():
        assert (REPO / name).is_file(), name
    requirements = (REPO / "requirements.txt").read_text()
    assert "dulwich" in requirements


def test_system_packages_exist_on_rpm_and_dpkg_platforms():
    """The EE base images are RHEL-family (dnf); the targets may be either. The ssh client
    (Ansible's connection) is openssh-clients on rpm platforms, openssh-client on dpkg ones."""
    depends_module = pytest.importorskip("bindep.depends")
    depends = depends_module.Depends((REPO / "bindep.txt").read_text())
    rpm = {rule[0] for rule in depends.active_rules(["platform:rpm", "platform:redhat", "platform:centos"])}
    dpkg = {rule[0] for rule in depends.active_rules(["platform:dpkg", "platform:debian", "platform:ubuntu"])}
    assert {"git", "openssh-clients"} <= rpm and "openssh-client" not in rpm, (
        f"bindep.txt installs {sorted(rpm)} on rpm platforms: dnf has no 'openssh-client'; "
        "use 'openssh-clients [platform:rpm]' and 'openssh-client [platform:dpkg]'")
    assert {"git", "openssh-client"} <= dpkg


@needs_builder
def test_ansible_builder_create_writes_the_build_context(tmp_path):
    context = tmp_path / "context"
    builder_create(EE_FILE, context)
    containerfile = (context / "Containerfile").read_text()
    assert f'EE_BASE_IMAGE="{load(EE_FILE)["images"]["base_image"]["name"]}"' in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect" in containerfile
    build = context / "_build"
    assert (build / "requirements.txt").read_text() == (REPO / "requirements.txt").read_text()
    assert (build / "bindep.txt").read_text() == (REPO / "bindep.txt").read_text()
    assert load(build / "requirements.yml") == load(EE_FILE)["dependencies"]["galaxy"]


@needs_builder
def test_the_built_collection_lands_where_the_galaxy_requirement_points(tmp_path):
    """On a copy of the definition next to a freshly built tarball (not the repository's
    .build/, which `make build` owns): the tarball is copied to _build/collections/, the
    path the galaxy requirement names relative to the build's working directory."""
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    dist = tmp_path / ".build" / "dist"
    proc = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(REPO)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    context = tmp_path / "context"
    builder_create(tmp_path / "execution-environment.yml", context)
    [requirement] = load(context / "_build" / "requirements.yml")["collections"]
    tarball = context / "_build" / requirement["name"]
    assert tarball.is_file(), sorted(p.name for p in (context / "_build").rglob("*"))
    assert tarball.name == f"gitdeploy-rollout-{collection_version()}.tar.gz"


@pytest.mark.parametrize("path", ["execution-environment.yml", "meta/execution-environment.yml"])
def test_definitions_are_plain_yaml_documents(path):
    text = (REPO / path).read_text()
    assert text.startswith("---\n")
    assert isinstance(yaml.safe_load(text), dict)
