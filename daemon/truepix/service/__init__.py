"""The daemon (``truepix run``): queue, hot-folder watcher, localhost API, worker, tray, wired by app.py."""
