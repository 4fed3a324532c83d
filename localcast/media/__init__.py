"""Media pipeline: source video -> ABR ladder -> content-addressed CMAF + HLS + DASH."""
