"""The fixtures and hooks every test folder shares live in the plugin module
:mod:`tests.support.fixtures`; the helpers tests import live beside it in
:mod:`tests.support`.  Nothing else belongs here.
"""

pytest_plugins = ["tests.support.fixtures"]
