import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { mayCallTool } from '../shared/auth';
import type { CommandEnvelope, TokenClaims } from '../shared/types';
import { RPC_ERRORS, type ErrorDetail } from '../shared/protocol';

/**
 * The permission rule of every transport (seed API and MCP sessions): which tools a command's
 * token may call and see. Tools are static: learnt once from the server's tools/list.
 */
export class ToolPermissions {
  /** Tool name -> read-only? */
  private readonly toolReadOnly = new Map<string, boolean>();

  learn(tools: Tool[]): void {
    for (const tool of tools) {
      this.toolReadOnly.set(tool.name, tool.annotations?.readOnlyHint === true);
    }
  }

  isKnown(tool: string): boolean {
    return this.toolReadOnly.has(tool);
  }

  /**
   * Why this command's token may not call the tool, or undefined when it may (or the tool is
   * unknown: the caller reports that its own way).
   */
  refusal(command: CommandEnvelope, tool: string): ErrorDetail | undefined {
    const readOnly = this.toolReadOnly.get(tool);
    if (readOnly === undefined) return undefined;
    const claims = claimsOf(command);
    if (mayCallTool(claims, tool, readOnly)) return undefined;
    return { code: RPC_ERRORS.permissionDenied, message: permissionMessage(claims, tool) };
  }

  /** The tools of a tools/list this command's token may call (the others are not shown). */
  visibleTools(command: CommandEnvelope, tools: Tool[]): Tool[] {
    const claims = claimsOf(command);
    return tools.filter((tool) =>
      mayCallTool(claims, tool.name, tool.annotations?.readOnlyHint === true),
    );
  }
}

function claimsOf(command: CommandEnvelope): TokenClaims {
  return {
    sub: command.sub,
    type: command.tokenType,
    ...(command.tools ? { tools: command.tools } : {}),
  };
}

function permissionMessage(claims: TokenClaims, tool: string): string {
  if (claims.tools && !claims.tools.includes(tool)) {
    return `Permission denied: tool ${tool} is not in this token's allow-list`;
  }
  return `Permission denied: a readonly token may only call read-only tools, and ${tool} modifies data`;
}
