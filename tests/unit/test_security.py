"""Security rules every plugin and extension keeps, checked on the source (AST), plus
the one place a secret can come in on the controller: credentials in a repository URL.

* commands are argument lists, never shell strings: no ``shell=True``, no
  ``os.system``/``os.popen``/``os.exec*``/``os.spawn*``, no ``subprocess`` call and no
  ``run_command`` with a string (or formatted string) as the command, no
  ``use_unsafe_shell``, no ``eval``/``exec``;
* module options that carry secrets are ``no_log``; the webhook secret is never logged;
* a password in ``git_deploy_repo_url`` never reaches an error message or a result.

Integration counterparts (tests/integration/test_reliability.py): lock, log and history
files are not world-writable after a real rollout, hooks run as the connection user, and
a repository URL's password does not reach the playbook output.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("plugins", "extensions") for p in (REPO / d).rglob("*.py") if "__pycache__" not in p.parts)
SUBPROCESS_CALLS = {"Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}
SECRET_OPTION = re.compile(r"(password|passwd|passphrase|secret|token|api_key|private_key)", re.I)


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _name(node: ast.AST) -> str:
    """Dotted name of a call target: ``subprocess.Popen``, ``self.module.run_command``..."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return "?"


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _assignments(scope: ast.AST, name: str) -> list:
    values = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    values.append(node.value)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and isinstance(node.target, ast.Name) \
                and node.target.id == name and node.value is not None:
            values.append(node.value)
    return values


def _is_argv(node: ast.AST, scope: ast.AST, depth: int = 0) -> bool:
    """Whether ``node`` builds an argument list (never a command string)."""
    if isinstance(node, (ast.List, ast.Tuple, ast.ListComp)):
        return True
    if isinstance(node, ast.Call) and _name(node.func) in ("list", "tuple"):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_argv(node.left, scope, depth) and _is_argv(node.right, scope, depth)
    if isinstance(node, ast.Name) and depth < 3:
        values = _assignments(scope, node.id)
        if values:
            return all(_is_argv(v, scope, depth + 1) for v in values)
        # A parameter: the callers are checked where they build it.
        args = getattr(scope, "args", None)
        return args is not None and node.id in [a.arg for a in args.args + args.kwonlyargs]
    return False


def _command_arg(call: ast.Call):
    if call.args:
        return call.args[0]
    for keyword in call.keywords:
        if keyword.arg in ("args", "argv", "cmd"):
            return keyword.value
    return None


def _scoped_calls(tree: ast.Module):
    """Every call with its innermost enclosing function (or the module)."""
    def visit(node, scope):
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else scope
            if isinstance(child, ast.Call):
                yield child, scope
            yield from visit(child, inner)
    yield from visit(tree, tree)


def _violations():
    found = []
    for path in SOURCES:
        tree = _parse(path)
        where = path.relative_to(REPO)
        for call, scope in _scoped_calls(tree):
            name = _name(call.func)
            line = f"{where}:{call.lineno} {name}"
            for keyword in call.keywords:
                off = isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                if keyword.arg == "shell" and not off:
                    found.append(f"{line}: shell={ast.unparse(keyword.value)}")
                if keyword.arg == "use_unsafe_shell" and not off:
                    found.append(f"{line}: use_unsafe_shell")
            if name in ("os.system", "os.popen", "commands.getoutput", "eval", "exec") \
                    or re.match(r"^os\.(exec|spawn)", name):
                found.append(f"{line}: {name} runs a string through a shell or interpreter")
            last = name.rsplit(".", 1)[-1]
            is_subprocess = name.startswith("subprocess.") and last in SUBPROCESS_CALLS
            if is_subprocess and last in ("getoutput", "getstatusoutput"):
                found.append(f"{line}: {name} always uses a shell")
            elif last == "_low_level_execute_command":
                found.append(f"{line}: a raw shell command on the target")
            elif is_subprocess or last == "run_command":
                command = _command_arg(call)
                if command is None or not _is_argv(command, scope):
                    shown = ast.unparse(command) if command is not None else "(none)"
                    found.append(f"{line}: command is not an argument list: {shown}")
    return found


def test_sources_are_found():
    names = {p.name for p in SOURCES}
    assert {"hooks.py", "git_deploy_push.py", "release.py", "git_webhook.py"} <= names


def test_commands_are_argument_lists_never_shell_strings():
    assert _violations() == []


@pytest.mark.parametrize("snippet, problem", [
    ("import subprocess\nsubprocess.run('git ' + ref, shell=True)", "shell="),
    ("import subprocess\nsubprocess.Popen('git status')", "not an argument list"),
    ("import os\nos.system('ls')", "os.system"),
    ("def f(m, ref):\n    cmd = 'git show %s' % ref\n    m.run_command(cmd)", "not an argument list"),
    ("def f(m, ref):\n    m.run_command(['git', ref], use_unsafe_shell=True)", "use_unsafe_shell"),
    ("def f(m, ref):\n    m.run_command(f'git {ref}')", "not an argument list"),
])
def test_the_checker_catches_shell_strings(tmp_path, snippet, problem):
    bad = tmp_path / "bad.py"
    bad.write_text(snippet)
    global SOURCES, REPO
    saved = SOURCES, REPO
    SOURCES, REPO = [bad], tmp_path
    try:
        found = _violations()
    finally:
        SOURCES, REPO = saved
    assert any(problem in f for f in found), found


def test_the_checker_accepts_argument_lists(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(
        "import subprocess\n"
        "def f(m, repo, tag):\n"
        "    cmd = [m.git, '--git-dir=%s' % repo] + ['rev-parse', tag]\n"
        "    m.run_command(cmd)\n"
        "    subprocess.Popen(list(cmd), shell=False)\n")
    global SOURCES, REPO
    saved = SOURCES, REPO
    SOURCES, REPO = [good], tmp_path
    try:
        assert _violations() == []
    finally:
        SOURCES, REPO = saved


def _argument_specs(tree: ast.Module):
    """``(option, keywords)`` of every ``argument_spec=dict(...)`` / OPTIONS dict in a module."""
    for call in _calls(tree):
        for keyword in call.keywords:
            if keyword.arg == "argument_spec" and isinstance(keyword.value, ast.Call):
                yield from _spec_items(keyword.value, tree)
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and _name(node.value.func) == "dict" \
                and any(isinstance(t, ast.Name) and t.id.isupper() and "OPTIONS" in t.id for t in node.targets):
            yield from _spec_items(node.value, tree)


def _spec_items(call: ast.Call, tree):
    for keyword in call.keywords:
        if keyword.arg and isinstance(keyword.value, ast.Call):
            yield keyword.arg, {k.arg: k.value for k in keyword.value.keywords}


def test_module_options_that_carry_secrets_are_no_log():
    options = []
    for path in sorted((REPO / "plugins" / "modules").glob("*.py")):
        for option, spec in _argument_specs(_parse(path)):
            options.append(option)
            if SECRET_OPTION.search(option):
                no_log = spec.get("no_log")
                assert isinstance(no_log, ast.Constant) and no_log.value is True, f"{path.name}: {option} is not no_log"
    assert "root" in options and "deploy_id" in options  # the scan sees the specs


def test_the_webhook_secret_is_never_logged():
    path = REPO / "extensions" / "eda" / "plugins" / "event_source" / "git_webhook.py"
    for call in _calls(_parse(path)):
        name = _name(call.func)
        if re.search(r"(LOGGER|logger|logging)\.\w+$", name) or name == "print":
            text = " ".join(ast.unparse(a) for a in list(call.args) + [k.value for k in call.keywords])
            assert "secret" not in text.replace("'secret'", "").lower() or "secret is None" in text, (
                f"{path.name}:{call.lineno} logs the secret: {text}")
            assert "options['secret']" not in text and 'options["secret"]' not in text, f"{path.name}:{call.lineno}"


SECRET = "s3cr3t-Tok3n"
URLS = [
    f"http://deployer:{SECRET}@127.0.0.1:9/app.git",
    f"https://deployer:{SECRET}@localhost:9/app.git",
    f"ssh://git:{SECRET}@127.0.0.1:9/app.git",
    f"https://{SECRET}@127.0.0.1:9/app.git",                  # a token as the user (GitHub, GitLab)
    f"https://oauth2:{SECRET}@127.0.0.1:9/app.git",           # GitLab's oauth2:<token>
    f"https://x-token-auth:{SECRET.replace('-', '%2D')}@127.0.0.1:9/app.git",  # percent-encoded
]


@pytest.mark.parametrize("url", URLS)
def test_credentials_in_the_repo_url_are_not_in_error_messages_nor_on_disk(tmp_path, url):
    import os
    import stat

    from ansible_collections.gitdeploy.rollout.plugins.module_utils import gitrepo

    cache = tmp_path / "cache"
    with pytest.raises(gitrepo.GitError) as failure:
        gitrepo.open_cache(url, str(cache))
    text = str(failure.value) + repr(getattr(failure.value, "result", ""))
    for form in (SECRET, SECRET.replace("-", "%2D")):
        assert form not in text, text
    assert "127.0.0.1" in text or "localhost" in text  # still says which URL
    # The cache's config names the remote without its credentials, readable by its owner only.
    config = (cache / "config").read_text()
    assert SECRET not in config and SECRET.replace("-", "%2D") not in config
    assert "url = %s" % gitrepo.strip_credentials(url) in config
    assert stat.S_IMODE(os.stat(cache / "config").st_mode) == 0o600
