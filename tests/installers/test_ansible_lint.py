"""``ansible-lint`` with the production profile (set in ansible/.ansible-lint) is clean on the whole
ansible/ tree: the edge and cloud roles, playbooks and the example inventory."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def lint(installers, project, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([installers.venv_tool("ansible-lint"), "--nocolor", "-f", "pep8", "."],
                          cwd=project, env=installers.clean_env(tmp_path), capture_output=True, text=True,
                          timeout=240)


@pytest.mark.timeout(300)
def test_the_ansible_tree_is_lint_clean_with_the_production_profile(installers, tmp_path):
    linted = lint(installers, installers.ansible_dir, tmp_path)
    assert linted.returncode == 0, f"ansible-lint found:\n{linted.stdout}\n{linted.stderr[-3000:]}"


def test_the_lint_config_catches_a_sloppy_task(installers, tmp_path):
    """The same config on a playbook with an unnamed shell task fails: the clean result above means something."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(installers.ansible_dir / ".ansible-lint", project / ".ansible-lint")
    (project / "sloppy.yml").write_text("---\n- name: Sloppy\n  hosts: all\n  tasks:\n    - shell: echo hi\n")
    linted = lint(installers, project, tmp_path)
    assert linted.returncode != 0
    assert "sloppy.yml" in linted.stdout and "name[missing]" in linted.stdout, linted.stdout + linted.stderr
