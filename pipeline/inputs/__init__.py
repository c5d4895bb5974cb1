"""Reading inputs: formats and tasks (`sources`), and planning them into byte-range splits (`splits`)."""
