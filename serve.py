"""Start the app: ``streamlit run serve.py`` (add ``--server.port``, ``--server.address``
as usual). The app itself is ``streamlit_app.py``; this adds the two routes that set and
delete the password session cookie (``app_pages/signin.py``), which a Streamlit script
cannot do itself, as it cannot set an HTTP header."""

import altair  # noqa: F401  (the charts' library: a second on the first chart otherwise)
import streamlit as st

# common imports the package and its libraries (geopandas, scipy, scikit-learn: seconds)
# when the server starts, not when the first user opens a page
from app_pages import common, signin  # noqa: F401

app = st.App("streamlit_app.py", routes=signin.routes())
