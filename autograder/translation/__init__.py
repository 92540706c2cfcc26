"""The Korean edition of the labs, built from the same source as the English one.

``solutions/`` stays the one source of truth. Each lab has one gettext catalog,
``translations/ko/<assignment>.po``: an entry per markdown cell and per string a code
cell prints, its ``msgctxt`` the cell (``resnet.ipynb#cell-03``), its ``msgid`` the
English text, so that a change to the English no longer matches its translation.
The kit's own messages (``labkit/``, the checks) have one more catalog,
``labkit/locale/ko/LC_MESSAGES/labkit.po``. ``extract`` finds the messages,
``catalog`` merges them into the catalogs and says which are stale, ``edition``
writes the Korean notebooks, ``glossary`` holds the course's Korean terms.
"""
