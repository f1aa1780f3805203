"""Example application the deployment files run; replace it with your own."""
