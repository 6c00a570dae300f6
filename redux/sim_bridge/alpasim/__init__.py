"""Real Alpasim, and minisim playing it: both sides of the egodriver wire contract.

- ``serve.py`` / ``driver_server.py`` / ``driver_session.py``: an
  ``egodriver.EgodriverService`` server for any of our policies (``redux serve-driver``);
- ``runtime_client.py`` / ``drive_job.py``: minisim plays the Alpasim runtime against
  any egodriver server and scores the rollouts like ``redux eval`` (``redux drive``);
- ``frames.py``, ``images.py``, ``catalogue.py``, ``debug_info.py``: what both sides
  need to speak the contract (poses, images, the camera catalogue, debug bytes).

The wire facts are in specs/egodriver.md.
"""
