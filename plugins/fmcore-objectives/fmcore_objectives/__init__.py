"""fmcore's built-in objectives: CFM (velocity), DSM (score) and DDPM (noise)."""
