"""Human review in Label Studio: local server, labeling config, push, harvest, agreement."""
