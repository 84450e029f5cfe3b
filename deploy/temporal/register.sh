#!/bin/sh
# One-shot job (image temporalio/admin-tools, which ships the `temporal` CLI): waits for the
# Temporal frontend, creates the namespace if it is missing and registers the project's search
# attributes as Keyword. Idempotent: safe on every `docker compose up`.
#
# The names below MUST equal core.temporal.SEARCH_ATTRIBUTES (`python -m core.temporal` prints
# them); tests/test_compose.py checks it. SQL visibility allows at most 10 Keyword attributes.
set -eu

: "${TEMPORAL_ADDRESS:=temporal:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${TEMPORAL_RETENTION:=720h}"

SEARCH_ATTRIBUTES="
RelaisOrganisation
RelaisDomain
RelaisCampaign
RelaisPerson
RelaisVehicle
RelaisDocument
RelaisFamily
RelaisStatus
"

temporal_cli() {
    temporal --address "$TEMPORAL_ADDRESS" "$@"
}

echo "register: waiting for the Temporal frontend at ${TEMPORAL_ADDRESS}"
attempt=0
until temporal_cli operator cluster health >/dev/null 2>&1; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge 60 ]; then
        echo "register: Temporal at ${TEMPORAL_ADDRESS} did not become healthy" >&2
        exit 1
    fi
    sleep 2
done

if temporal_cli operator namespace describe -n "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
    echo "register: namespace ${TEMPORAL_NAMESPACE} exists"
else
    echo "register: creating namespace ${TEMPORAL_NAMESPACE} (retention ${TEMPORAL_RETENTION})"
    if ! out=$(temporal_cli operator namespace create -n "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_RETENTION" 2>&1); then
        case "$out" in
            *"already exists"* | *"AlreadyExists"*) echo "register: namespace created concurrently" ;;
            *) echo "$out" >&2; exit 1 ;;
        esac
    fi
fi

# A new namespace reaches the frontend's namespace cache some seconds after its creation:
# until then the operator calls answer "Namespace ... is not found".
attempt=0
until temporal_cli operator search-attribute list -n "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge 60 ]; then
        echo "register: namespace ${TEMPORAL_NAMESPACE} still not usable" >&2
        temporal_cli operator search-attribute list -n "$TEMPORAL_NAMESPACE" >&2 || true
        exit 1
    fi
    sleep 2
done

# One --name per call (SQL visibility). An attribute that already exists as Keyword is success;
# one that exists with another type is an error; anything else is retried for a while.
for name in $SEARCH_ATTRIBUTES; do
    attempt=0
    until out=$(temporal_cli operator search-attribute create -n "$TEMPORAL_NAMESPACE" --name "$name" --type Keyword 2>&1); do
        case "$out" in
            *"different type"*) echo "$out" >&2; exit 1 ;;
            *"already exists"* | *"AlreadyExists"*) break ;;
        esac
        attempt=$((attempt + 1))
        if [ "$attempt" -ge 15 ]; then
            echo "$out" >&2
            exit 1
        fi
        sleep 2
    done
    echo "register: search attribute ${name} (Keyword) ok"
done

echo "register: done"
