"""The offline eval suite: replay recorded incidents and score the conclusions."""
