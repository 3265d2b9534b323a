"""The push engine: platform events in, and the records they leave for the push."""
