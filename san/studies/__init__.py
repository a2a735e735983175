"""Studies of data and models: data-quality studies, label errors, explanations."""
