"""The labeling domain: samples, labels, routing, the constitution, the store and Label Studio."""
