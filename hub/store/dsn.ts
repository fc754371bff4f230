/** Where a store lives, parsed from a DSN string. */
export type StoreLocation =
  | { kind: "sqlite"; path: string }
  | {
    kind: "mysql";
    host: string;
    port: number;
    user: string;
    password: string;
    database: string;
  };

/**
 * Parses `sqlite:<path>`, `sqlite::memory:` or `mysql://user:pass@host:port/db`.
 *
 * Throws `TypeError` for anything else; messages never contain the password.
 */
export function parseStoreDsn(dsn: string): StoreLocation {
  if (dsn.startsWith("sqlite:")) {
    const path = dsn.slice("sqlite:".length);
    if (path === "") throw new TypeError("Cannot open store: sqlite DSN has no path");
    return { kind: "sqlite", path };
  }
  if (dsn.startsWith("mysql://")) return parseMysql(dsn);
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(dsn)?.[0] ?? "";
  throw new TypeError(
    `Cannot open store: unsupported DSN scheme "${scheme}" (expected sqlite: or mysql://)`,
  );
}

function parseMysql(dsn: string): StoreLocation {
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    // The URL parser's own message would echo the DSN, password included.
    throw new TypeError(`Cannot open store: malformed mysql DSN ${redactDsn(dsn)}`);
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (database === "" || database.includes("/")) {
    throw new TypeError(
      `Cannot open store: mysql DSN ${
        redactDsn(dsn)
      } must name one database (mysql://user:pass@host:port/db)`,
    );
  }
  if (url.search !== "") {
    // Silently ignoring options (ssl, timeouts) would be worse than refusing them.
    throw new TypeError(`Cannot open store: mysql DSN ${redactDsn(dsn)} has unsupported options`);
  }
  return {
    kind: "mysql",
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? 3306 : Number(url.port),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database,
  };
}

/** The DSN with any password replaced by `***`, safe for logs and error messages. */
export function redactDsn(dsn: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(.*)$/s.exec(dsn);
  if (!m) return dsn;
  const [, scheme, rest] = m as unknown as [string, string, string];
  // The last "@" ends the user info even when an unencoded "@" or "/" sits in the password:
  // over-redacting a strange DSN is fine, leaking part of a password is not.
  const at = rest.lastIndexOf("@");
  const colon = rest.indexOf(":");
  if (at < 0 || colon < 0 || colon > at) return dsn;
  return `${scheme}${rest.slice(0, colon)}:***${rest.slice(at)}`;
}
