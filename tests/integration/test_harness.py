"""The SSH test-host harness itself: real sshd, real Ansible, independent hosts."""

import json

from conftest import alive
from hosts import Fleet


def test_ping_over_ssh_reaches_every_host(deployment):
    proc = deployment.ansible("all", "-m", "ansible.builtin.ping", "-o")
    hosts = deployment.hosts("staging") + deployment.hosts("prod")
    assert len(hosts) == 4
    for host in hosts:
        assert f"{host} | SUCCESS" in proc.stdout
        assert '"ping": "pong"' in proc.stdout


def test_hosts_have_distinct_ports_and_roots(deployment):
    inventory = json.loads(deployment.inventory.read_text())
    prod = inventory["all"]["children"]["prod"]["hosts"]
    assert len(prod) == 3
    ports = {h["ansible_port"] for h in prod.values()}
    roots = {h["git_deploy_root"] for h in prod.values()}
    assert len(ports) == 3 and len(roots) == 3
    # The connection really lands on the port the inventory names: sshd's own view.
    proc = deployment.ansible("prod", "-m", "ansible.builtin.command",
                              "-a", "printenv SSH_CONNECTION", "-o")
    for name, host in prod.items():
        line = next(line for line in proc.stdout.splitlines() if line.startswith(name))
        assert line.split()[-1] == str(host["ansible_port"])


def test_fresh_inventory_gives_empty_roots(ssh_fleet, tmp_path):
    first = ssh_fleet.inventory(tmp_path / "a")
    second = ssh_fleet.inventory(tmp_path / "b")
    a = json.loads(first.read_text())["all"]["children"]["prod"]["hosts"]
    b = json.loads(second.read_text())["all"]["children"]["prod"]["hosts"]
    assert {h["git_deploy_root"] for h in a.values()}.isdisjoint(
        h["git_deploy_root"] for h in b.values())


def test_down_stops_every_sshd_and_removes_its_directory(tmp_path):
    fleet = Fleet(base=tmp_path / "mini", groups={"solo": 2}).up()
    pids = [h.pid for h in fleet.hosts]
    assert len(set(h.port for h in fleet.hosts)) == 2
    fleet.down()
    assert not (tmp_path / "mini").exists()
    for pid in pids:
        assert not alive(pid)
