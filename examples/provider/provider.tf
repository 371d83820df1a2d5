provider "autarky" {
  # Optional: where the local platform keeps clusters and node data.
  # Defaults to $AUTARKY_STATE_DIR, else /var/lib/autarky.
  local {
    state_dir = "/var/lib/autarky"
  }
}
