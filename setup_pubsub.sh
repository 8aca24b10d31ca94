#!/usr/bin/env bash
# Creates the pipeline's Pub/Sub topics and subscriptions; safe to run again.
#
# Target, as for every role of the pipeline: the emulator at $PUBSUB_EMULATOR_HOST
# when it is set; real Google Cloud (your gcloud credentials) when it is set but
# empty, or unset with GOOGLE_CLOUD_PROJECT set; otherwise the local emulator at
# 127.0.0.1:8085 with project ecom-local.
#
# The consumer subscriptions forward a message to its DLQ topic after
# $MAX_DELIVERY_ATTEMPTS deliveries (default 20), so that a message that keeps
# failing stops looping; the payment consumer spreads its delays so that its own
# grace period ends before that limit (README: "Dead letters").
#
# Subscriptions get a 10 s ack deadline, which a consumer extends for the messages
# it still holds (as Pub/Sub's streaming client does), so that what a crashed
# consumer held is redelivered within seconds, not a minute; and they keep
# unacknowledged messages for 7 days, Pub/Sub's maximum, so a consumer that is
# down for a weekend loses nothing and dead letters can be inspected at leisure.
set -euo pipefail

PROJECT="${GOOGLE_CLOUD_PROJECT:-ecom-local}"
ACK_DEADLINE_SECONDS="${ACK_DEADLINE_SECONDS:-10}"
RETENTION="${MESSAGE_RETENTION:-7d}"

MAX_DELIVERY_ATTEMPTS="${MAX_DELIVERY_ATTEMPTS:-20}"

# topic:subscription:dead-letter topic (the consumer subscriptions get Pub/Sub's own
# dead-letter policy as a safety net for poison messages)
PAIRS=(
  "orders_data:orders_data-sub:dlq_orders_data"
  "payments_data:payments_data-sub:dlq_payments_data"
  "dlq_payments_data:dlq_payments_data-sub:"
  "dlq_orders_data:dlq_orders_data-sub:"
)

if ! command -v gcloud >/dev/null 2>&1; then
  echo "error: gcloud is not installed; install the Google Cloud CLI first" >&2
  exit 1
fi

# Unset emulator variable: the local emulator, unless a project of your own is set.
if [[ -z "${PUBSUB_EMULATOR_HOST+set}" ]]; then
  if [[ -n "${GOOGLE_CLOUD_PROJECT:-}" ]]; then PUBSUB_EMULATOR_HOST=""; else PUBSUB_EMULATOR_HOST="127.0.0.1:8085"; fi
fi
if [[ -n "$PUBSUB_EMULATOR_HOST" ]]; then
  export CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB="http://${PUBSUB_EMULATOR_HOST}/"
  export CLOUDSDK_AUTH_DISABLE_CREDENTIALS=true
  target="the emulator at $PUBSUB_EMULATOR_HOST"
else
  target="Google Cloud"
fi
export CLOUDSDK_CORE_PROJECT="$PROJECT"
echo "setting up Pub/Sub in project $PROJECT on $target"

if ! existing_topics="$(gcloud pubsub topics list --format='value(name.basename())' 2>&1)"; then
  echo "error: cannot list topics on $target:" >&2
  echo "$existing_topics" >&2
  exit 1
fi
existing_subscriptions="$(gcloud pubsub subscriptions list --format='value(name.basename())')"

missing_topics=()
for pair in "${PAIRS[@]}"; do
  IFS=: read -r topic _ _ <<<"$pair"
  grep -qx "$topic" <<<"$existing_topics" || missing_topics+=("$topic")
done
if ((${#missing_topics[@]})); then
  gcloud pubsub topics create "${missing_topics[@]}" --quiet
fi

for pair in "${PAIRS[@]}"; do
  IFS=: read -r topic subscription dead_letter_topic <<<"$pair"
  options=(--ack-deadline="$ACK_DEADLINE_SECONDS" --message-retention-duration="$RETENTION")
  if [[ -n "$dead_letter_topic" ]]; then
    options+=(--dead-letter-topic="$dead_letter_topic" --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS")
  fi
  if grep -qx "$subscription" <<<"$existing_subscriptions"; then
    if [[ -n "$dead_letter_topic" ]]; then
      gcloud pubsub subscriptions update "$subscription" "${options[@]}" --quiet
    else
      echo "subscription $subscription exists"
    fi
  else
    gcloud pubsub subscriptions create "$subscription" --topic="$topic" "${options[@]}" --quiet
  fi
done
echo "topics and subscriptions are ready"
