/** `Executions` on AWS Step Functions (or any server speaking its API). */

import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { awsClientConfig } from '../config.ts';
import type { Executions } from '../ports.ts';

export class StepFunctionsExecutions implements Executions {
  constructor(private readonly client = new SFNClient(awsClientConfig('sfn'))) {}

  async status(executionArn: string): Promise<string> {
    const { status } = await this.client.send(new DescribeExecutionCommand({ executionArn }));
    return String(status);
  }
}
