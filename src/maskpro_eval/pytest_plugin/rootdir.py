"""``--checkpoint /any/existing/path`` (space form) must not move pytest's rootdir.

pytest decides its rootdir and ini file (``determine_setup``) before it loads plugins, so at that moment
``--checkpoint`` is unknown and the existing path after it is taken for a test path: the rootdir becomes
the checkpoint folder, the project's ``pyproject.toml`` (markers, testpaths, addopts) is never read.
Once the plugin is loaded pytest parses the command line again, now knowing every option; this hook,
the first one after that parse, decides rootdir and ini again from the real test paths and, when the two
differ, puts the right ones in place before any conftest, ini value or test path is used.
"""
from __future__ import annotations

import copy

import pytest
from _pytest.config.findpaths import determine_setup


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    ns = early_config.known_args_namespace  # parsed with the plugin's options known
    rootpath, inipath, inicfg, ignored = determine_setup(
        inifile=ns.inifilename, override_ini=ns.override_ini, args=ns.file_or_dir,
        rootdir_cmd_arg=ns.rootdir or None, invocation_dir=early_config.invocation_params.dir)
    old_root, old_ini = early_config.rootpath, early_config.inipath
    if (rootpath, inipath) == (old_root, old_ini):
        return
    early_config._rootpath, early_config._inipath = rootpath, inipath
    early_config._inicfg, early_config._ignored_config_files = inicfg, ignored
    early_config._inicache.clear()
    parser.extra_info["rootdir"], parser.extra_info["inifile"] = str(rootpath), str(inipath)
    args[:] = early_config._validate_args(early_config.getini("addopts"), "via addopts config") + args
    early_config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(early_config.option))
    if ns.confcutdir == str(old_ini.parent if old_ini else old_root):  # pytest's default, not the user's
        early_config.known_args_namespace.confcutdir = str(inipath.parent if inipath else rootpath)
    early_config._configure_python_path()
