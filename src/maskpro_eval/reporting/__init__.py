"""What the run leaves behind: results JSON/CSV/Markdown, plots, comparison and trend files, tracking, atomic writes."""
