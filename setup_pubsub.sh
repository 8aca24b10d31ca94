#!/usr/bin/env bash
# Creates the pipeline's Pub/Sub topics and subscriptions; safe to run again.
#
# Target: the emulator at $PUBSUB_EMULATOR_HOST (default 127.0.0.1:8085, as for
# every role of the pipeline); set PUBSUB_EMULATOR_HOST= (empty) to use real
# Google Cloud with your gcloud credentials. Project: $GOOGLE_CLOUD_PROJECT
# (default ecom-local).
#
# Subscriptions get a 60 s ack deadline (a consumer acks a batch only after
# Cassandra or the DLQ confirmed it, which can take seconds under load) and keep
# unacknowledged messages for 7 days, Pub/Sub's maximum, so a consumer that is
# down for a weekend loses nothing and dead letters can be inspected at leisure.
set -euo pipefail

PROJECT="${GOOGLE_CLOUD_PROJECT:-ecom-local}"
ACK_DEADLINE_SECONDS="${ACK_DEADLINE_SECONDS:-60}"
RETENTION="${MESSAGE_RETENTION:-7d}"

# topic:subscription pairs
PAIRS=(
  "orders_data:orders_data-sub"
  "payments_data:payments_data-sub"
  "dlq_payments_data:dlq_payments_data-sub"
  "dlq_orders_data:dlq_orders_data-sub"
)

if ! command -v gcloud >/dev/null 2>&1; then
  echo "error: gcloud is not installed; install the Google Cloud CLI first" >&2
  exit 1
fi

if [[ -z "${PUBSUB_EMULATOR_HOST+set}" ]]; then
  PUBSUB_EMULATOR_HOST="127.0.0.1:8085"
fi
if [[ -n "$PUBSUB_EMULATOR_HOST" ]]; then
  export CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB="http://${PUBSUB_EMULATOR_HOST}/"
  export CLOUDSDK_AUTH_DISABLE_CREDENTIALS=true
  target="emulator at $PUBSUB_EMULATOR_HOST"
else
  target="Google Cloud"
fi
export CLOUDSDK_CORE_PROJECT="$PROJECT"
echo "setting up Pub/Sub in project $PROJECT on the $target"

if ! existing_topics="$(gcloud pubsub topics list --format='value(name.basename())' 2>&1)"; then
  echo "error: cannot list topics on the $target:" >&2
  echo "$existing_topics" >&2
  exit 1
fi
existing_subscriptions="$(gcloud pubsub subscriptions list --format='value(name.basename())')"

missing_topics=()
for pair in "${PAIRS[@]}"; do
  topic="${pair%%:*}"
  grep -qx "$topic" <<<"$existing_topics" || missing_topics+=("$topic")
done
if ((${#missing_topics[@]})); then
  gcloud pubsub topics create "${missing_topics[@]}" --quiet
fi

for pair in "${PAIRS[@]}"; do
  topic="${pair%%:*}"
  subscription="${pair##*:}"
  if grep -qx "$subscription" <<<"$existing_subscriptions"; then
    echo "subscription $subscription exists"
  else
    gcloud pubsub subscriptions create "$subscription" --topic="$topic" \
      --ack-deadline="$ACK_DEADLINE_SECONDS" --message-retention-duration="$RETENTION" --quiet
  fi
done
echo "topics and subscriptions are ready"
