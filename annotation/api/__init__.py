"""REST API of the annotation app (`/api/v1/`), one module per area; routes in `annotation/api/urls.py`.
Views translate HTTP to services and selectors; every protected object comes through an `access_*` function."""
