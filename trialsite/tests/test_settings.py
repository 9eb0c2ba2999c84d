import os
import subprocess
import sys

from django.conf import settings


def test_passwords_hash_with_argon2_outside_tests():
    from trialsite.settings import base

    assert base.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    validators = {v["NAME"].rsplit(".", 1)[-1]: v for v in base.AUTH_PASSWORD_VALIDATORS}
    assert validators["MinimumLengthValidator"]["OPTIONS"]["min_length"] == 12
    assert "CommonPasswordValidator" in validators


def production_env(**extra):
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="trialsite.settings.production",
        DJANGO_SECRET_KEY="x" * 20 + "-a-long-random-production-secret-key-0123456789",
        DJANGO_ALLOWED_HOSTS="trial.example.org",
        FIELD_ENCRYPTION_KEY="ZGV2LW9ubHkta2V5LXRyaWFsc2l0ZS0wMDAwMDAwMDA=",
        # participant app / reminder providers (issue 10/11): e-mail only unless a test configures providers
        PUBLIC_BASE_URL="https://trial.example.org",
        REMINDER_CHANNELS="email",
    )
    env.update(extra)
    return env


def test_production_check_deploy_is_clean():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_secrets():
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr
