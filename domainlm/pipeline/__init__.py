"""The quickstart pipeline: prepare base → train → eval → register → promote → serve → ask → report."""
