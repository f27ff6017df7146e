from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from training.methods.configs import reward_function_registry_use

        # Read on every check, so the configs (plain Python) see the admin's setting, overrides included.
        reward_function_registry_use(lambda: getattr(settings, "LOUPE_REWARD_FUNCTIONS", {}))
