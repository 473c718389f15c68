/** Error bodies become sentences a user can act on. */
import { describe, expect, it } from "vitest";

import { chatOffDetail, describeError, readinessReason } from "../../lib/errors";
import { listQuery } from "../../lib/todos";

describe("describeError", () => {
  it("uses the server's own words", () => {
    expect(describeError(401, { detail: "Invalid email or password" })).toBe("Invalid email or password");
  });

  it("names the fields of a FastAPI validation error", () => {
    const body = {
      detail: [
        { loc: ["body", "title"], msg: "String should have at most 200 characters", type: "string_too_long" },
        { loc: ["body", "priority"], msg: "Input should be 'low', 'medium' or 'high'", type: "enum" },
      ],
    };
    expect(describeError(422, body)).toBe(
      "title: String should have at most 200 characters; priority: Input should be 'low', 'medium' or 'high'",
    );
  });

  it("falls back to the status when the body says nothing", () => {
    expect(describeError(500, null)).toBe("The server failed (HTTP 500). Try again in a moment.");
    expect(describeError(418, {})).toBe("The request failed (HTTP 418).");
  });
});

describe("readinessReason", () => {
  it("accepts the shapes a readiness endpoint commonly uses", () => {
    expect(readinessReason(503, { detail: "no key" })).toBe("no key");
    expect(readinessReason(503, { status: "not ready", reason: "backend down" })).toBe("backend down");
    expect(readinessReason(503, "plain text reason")).toBe("plain text reason");
    expect(readinessReason(503, null)).toBe("The chatbot is not ready (HTTP 503).");
  });
});

describe("listQuery", () => {
  it("maps the filter controls to the backend's parameters", () => {
    expect(listQuery("all", "", 50)).toBe("limit=50");
    expect(listQuery("done", "  milk ", 50, 50)).toBe("done=true&q=milk&limit=50&offset=50");
    expect(listQuery("open", "", 10)).toBe("done=false&limit=10");
  });
});

describe("chatOffDetail", () => {
  it("drops the chatbot's own lead-in, which the panel heading already says", () => {
    expect(chatOffDetail("Chat is off: no model is configured (OPENAI_API_KEY is not set).")).toBe(
      "No model is configured (OPENAI_API_KEY is not set).",
    );
    expect(chatOffDetail("The chatbot service at http://x:1 cannot be reached (connection refused).")).toBe(
      "The chatbot service at http://x:1 cannot be reached (connection refused).",
    );
    expect(chatOffDetail(null)).toBe("The chatbot is not available.");
  });
});
