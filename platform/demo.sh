#!/usr/bin/env bash
# Sets everything up and starts the demo: web server (platform/web.py: Granian) and a real Celery worker, a demo project
# with sample data, and an admin login printed. Ctrl-C stops both.
#   PORT=8000 (default) chooses the web port; LOUPE_DATA_DIR (default ./var) holds the database and files.
set -euo pipefail
cd "$(dirname "$0")/.."
platform/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
# Demo mode: without DJANGO_SECRET_KEY, a random key is generated once into the data folder (secret_key).
export LOUPE_DEMO=1
PORT=${PORT:-8000}
DATA_DIR=${LOUPE_DATA_DIR:-$(pwd)/var}
mkdir -p "$DATA_DIR/logs"

python manage.py migrate --noinput
python manage.py collectstatic --noinput -v 0
python manage.py demo_setup | tee "$DATA_DIR/logs/demo-logins.txt"

celery -A loupe worker -Q default,training,labeler,benchmark --pool solo --loglevel INFO >"$DATA_DIR/logs/worker.log" 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null; wait $WORKER 2>/dev/null' EXIT INT TERM
echo
echo "Loupe is running at http://127.0.0.1:$PORT/  (API docs: /api/v1/docs/, admin: /admin/)"
echo "Logins are above (also in $DATA_DIR/logs/demo-logins.txt); worker log: $DATA_DIR/logs/worker.log"
python platform/web.py --bind "127.0.0.1:$PORT"
