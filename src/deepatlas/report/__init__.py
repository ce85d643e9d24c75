"""The generated report: ``deepatlas tour`` writes one static page from the lab's results."""
