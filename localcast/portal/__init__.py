"""The partner portal: what an ISP partner and the operator see and do in a browser.

Server-rendered pages (Jinja2) mounted on the control plane under ``/portal``.
Accounts, login sessions and CSRF live in :mod:`.accounts` and :mod:`.auth`;
what a viewer may see in :mod:`.scope`; one module per page in :mod:`.pages`.
"""
