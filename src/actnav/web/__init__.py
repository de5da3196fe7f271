"""The web application: FastAPI, server-rendered pages (Jinja2) and a REST API under ``/api``.

Start it with ``actnav serve``; build it in code with :func:`actnav.web.app.create_app`.
"""
