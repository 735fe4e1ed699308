# shellcheck shell=bash
# Source this file (". localstack/env.sh") to point the AWS SDK (and provision) at the local emulator.
PROVISION_EMULATOR_URL="http://127.0.0.1:${PROVISION_EMULATOR_PORT:-5000}"
export PROVISION_EMULATOR_URL
export AWS_ENDPOINT_URL="$PROVISION_EMULATOR_URL"
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_EC2_METADATA_DISABLED=true
# Not read by provision (the Rust SDK uses AWS_REGION); for awscli and boto3 users poking at the emulator.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"
