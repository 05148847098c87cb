#!/usr/bin/env bash
# The cluster's secrets on this node (run by the launcher YAMLs' setup commands, in the container):
#   head   - makes them once in ~/.tdrl-cluster-auth (a file mount the head's autoscaler copies to
#            every worker it starts): Ray's auth token and the MLflow server's password and session
#            key, each 256 random bits. Never on your machine, never in the repository.
#   worker - finds them there (copied from the head) or stops, saying so.
# Both then install them where Ray and MLflow look: ~/.ray/auth_token (with RAY_AUTH_MODE=token,
# set by the start commands) and ~/.mlflow/credentials (MLflow's client reads it for basic auth).
set -euo pipefail
role=${1:-}
dir=${TDRL_AUTH_DIR:-$HOME/.tdrl-cluster-auth}
user=tdrl  # the MLflow user every node logs as (the server's admin: cluster/mlflow_server.sh)
umask 077
case "$role" in
  head)
    mkdir -p "$dir"
    for name in ray_auth_token mlflow_password mlflow_secret_key; do
      [ -s "$dir/$name" ] || python3 -c 'import secrets, sys; sys.stdout.write(secrets.token_hex(32))' > "$dir/$name"
    done
    ;;
  worker)
    for name in ray_auth_token mlflow_password; do
      if [ ! -s "$dir/$name" ]; then
        echo "tdrl: $dir/$name is missing on this worker: the head writes it (node_auth.sh head) and its" \
             "autoscaler copies $dir here; was the head set up with this YAML (file_mounts)?" >&2
        exit 1
      fi
    done
    ;;
  *)
    echo "usage: node_auth.sh head|worker" >&2
    exit 2
    ;;
esac
chmod 700 "$dir"
mkdir -p "$HOME/.ray" "$HOME/.mlflow"
install -m 600 "$dir/ray_auth_token" "$HOME/.ray/auth_token"
printf '[mlflow]\nmlflow_tracking_username = %s\nmlflow_tracking_password = %s\n' \
  "$user" "$(cat "$dir/mlflow_password")" > "$HOME/.mlflow/credentials"
chmod 600 "$HOME/.mlflow/credentials"
echo "tdrl: cluster secrets installed on this $role node"
