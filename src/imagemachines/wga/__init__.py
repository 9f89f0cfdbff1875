"""Web Gallery of Art data: catalog, query language, resumable downloader, subset builder."""
