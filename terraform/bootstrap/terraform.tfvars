aws_region        = "sa-east-1"
state_bucket_name = "lh360-tfstate-sa-east-1"
