"""The daemon's own web page (``truepix open``): its sign-in (``auth``), who may ask the daemon at all
(``access``: the token, the session cookie, a browser's Origin; http.py asks it), its routes (``routes``), the
before/after previews rendered from the real files (``previews``) and the words a photographer reads
(``words``).  The page itself is plain HTML/CSS/JS in ``static/``, served from the package: no build
step, no third-party asset, nothing fetched from the network."""
