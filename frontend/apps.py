from django.apps import AppConfig


class FrontendConfig(AppConfig):
    """Templates and static files of Loupe's pages; the views live in the apps they show."""

    name = "frontend"
