"""Start the app: ``streamlit run serve.py`` (add ``--server.port``, ``--server.address``
as usual). The app itself is ``streamlit_app.py``; this adds the two routes that set and
delete the password session cookie (``app_pages/signin.py``), which a Streamlit script
cannot do itself, as it cannot set an HTTP header."""

import streamlit as st

from app_pages import signin

app = st.App("streamlit_app.py", routes=signin.routes())
