// Projects and their documents: list, create, edit, delete.
import type { Document, Project } from "@quarters/sdk";
import { field, run, table, when, type View } from "./app.js";
import { formValues, h } from "./dom.js";

/** projectsView lists the tenant's projects; with a project id, also its documents. */
export const projectsView: View = async (ctx, root, [projectId]) => {
  const projects: Project[] = [];
  let next = "";
  const load = async () => {
    const res = await ctx.client.projects.listProjects({ pageSize: 50, pageToken: next });
    projects.push(...res.projects);
    next = res.nextPageToken;
  };
  await load();
  if (!ctx.alive()) return;

  const list = h("div");
  const docs = h("div");
  const render = () => {
    const rows = projects.map((p) => projectRow(p));
    list.replaceChildren(
      table("projects", ["Name", "Description", "Updated", ""], rows, "No projects yet."),
      ...(next ? [h("button", { type: "button", onclick: (e: Event) => void more(e.currentTarget as HTMLButtonElement) }, "Show more")] : []),
    );
  };
  const more = (b: HTMLButtonElement) =>
    run(ctx, b, async () => {
      await load();
      if (ctx.alive()) render();
    });

  const projectRow = (p: Project): HTMLTableRowElement => {
    const row = h(
      "tr",
      { "data-id": p.id, class: p.id === projectId ? "selected" : null },
      h("td", {}, h("a", { href: `/console/projects/${p.id}`, "data-nav": "" }, p.name)),
      h("td", {}, p.description),
      h("td", {}, when(p.updateTime)),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", onclick: () => row.replaceWith(editRow(p)) }, "Edit"),
        h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: (e: Event) =>
              void run(ctx, e.currentTarget as HTMLButtonElement, async () => {
                if (!confirm(`Delete the project "${p.name}" and its documents?`)) return;
                await ctx.client.projects.deleteProject({ id: p.id });
                ctx.notice(`Deleted the project "${p.name}".`);
                if (p.id === projectId) ctx.go("projects");
                else {
                  projects.splice(projects.indexOf(p), 1);
                  render();
                }
              }),
          },
          "Delete",
        ),
      ),
    );
    return row;
  };

  const editRow = (p: Project): HTMLTableRowElement => {
    const form = h(
      "form",
      { class: "inline", "aria-label": `Edit project ${p.name}` },
      field("Name", "name", { value: p.name, required: true, maxlength: "200" }),
      field("Description", "description", { value: p.description, maxlength: "2000" }),
      h("button", { type: "submit" }, "Save"),
      h("button", { type: "button", onclick: () => render() }, "Cancel"),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void run(ctx, form, async () => {
        const v = formValues(form);
        const res = await ctx.client.projects.updateProject({
          project: { id: p.id, name: v.name, description: v.description },
          updateMask: { paths: ["name", "description"] },
        });
        if (!ctx.alive()) return;
        projects[projects.indexOf(p)] = res.project!;
        render();
      });
    });
    return h("tr", {}, h("td", { colspan: "4" }, form));
  };

  const create = h(
    "form",
    { id: "project-create", "aria-label": "New project" },
    field("Name", "name", { required: true, maxlength: "200" }),
    field("Description", "description", { maxlength: "2000" }),
    h("button", { type: "submit" }, "Create project"),
  );
  create.addEventListener("submit", (e) => {
    e.preventDefault();
    void run(ctx, create, async () => {
      const v = formValues(create);
      const res = await ctx.client.projects.createProject({ name: v.name, description: v.description });
      if (!ctx.alive()) return;
      projects.unshift(res.project!);
      create.reset();
      render();
    });
  });

  render();
  root.replaceChildren(h("h2", {}, "Projects"), create, list, docs);
  const selected = projects.find((p) => p.id === projectId);
  if (projectId && !selected) {
    // Not in the first page: ask for it (another tenant's id is NOT_FOUND).
    try {
      const res = await ctx.client.projects.getProject({ id: projectId });
      if (ctx.alive()) await documentsSection(ctx, docs, res.project!);
    } catch (err) {
      ctx.fail(err);
    }
  } else if (selected) {
    await documentsSection(ctx, docs, selected);
  }
};

async function documentsSection(ctx: Parameters<View>[0], root: HTMLElement, project: Project) {
  const documents: Document[] = [];
  let next = "";
  const load = async () => {
    const res = await ctx.client.documents.listDocuments({ projectId: project.id, pageSize: 50, pageToken: next });
    documents.push(...res.documents);
    next = res.nextPageToken;
  };
  await load();
  if (!ctx.alive()) return;

  const list = h("div");
  const render = () => {
    list.replaceChildren(
      table("documents", ["Title", "Content", "Updated", ""], documents.map(docRow), "No documents in this project yet."),
      ...(next ? [h("button", { type: "button", onclick: (e: Event) => void more(e.currentTarget as HTMLButtonElement) }, "Show more")] : []),
    );
  };
  const more = (b: HTMLButtonElement) =>
    run(ctx, b, async () => {
      await load();
      if (ctx.alive()) render();
    });

  const docRow = (d: Document): HTMLTableRowElement => {
    const row = h(
      "tr",
      { "data-id": d.id },
      h("td", {}, d.title),
      h("td", { class: "content" }, d.content.length > 200 ? `${d.content.slice(0, 200)}…` : d.content),
      h("td", {}, when(d.updateTime)),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", onclick: () => row.replaceWith(editRow(d)) }, "Edit"),
        h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: (e: Event) =>
              void run(ctx, e.currentTarget as HTMLButtonElement, async () => {
                if (!confirm(`Delete the document "${d.title}"?`)) return;
                await ctx.client.documents.deleteDocument({ id: d.id });
                if (!ctx.alive()) return;
                documents.splice(documents.indexOf(d), 1);
                ctx.notice(`Deleted the document "${d.title}".`);
                render();
              }),
          },
          "Delete",
        ),
      ),
    );
    return row;
  };

  const editRow = (d: Document): HTMLTableRowElement => {
    const content = h("textarea", { name: "content", rows: "6" });
    content.value = d.content;
    const form = h(
      "form",
      { class: "stacked", "aria-label": `Edit document ${d.title}` },
      field("Title", "title", { value: d.title, required: true, maxlength: "300" }),
      h("label", {}, "Content", content),
      h("div", {}, h("button", { type: "submit" }, "Save"), h("button", { type: "button", onclick: () => render() }, "Cancel")),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void run(ctx, form, async () => {
        const v = formValues(form);
        const res = await ctx.client.documents.updateDocument({
          document: { id: d.id, title: v.title, content: v.content },
          updateMask: { paths: ["title", "content"] },
        });
        if (!ctx.alive()) return;
        documents[documents.indexOf(d)] = res.document!;
        render();
      });
    });
    return h("tr", {}, h("td", { colspan: "4" }, form));
  };

  const create = h(
    "form",
    { id: "document-create", class: "stacked", "aria-label": "New document" },
    field("Title", "title", { required: true, maxlength: "300" }),
    h("label", {}, "Content", h("textarea", { name: "content", rows: "4" })),
    h("div", {}, h("button", { type: "submit" }, "Create document")),
  );
  create.addEventListener("submit", (e) => {
    e.preventDefault();
    void run(ctx, create, async () => {
      const v = formValues(create);
      const res = await ctx.client.documents.createDocument({ projectId: project.id, title: v.title, content: v.content });
      if (!ctx.alive()) return;
      documents.unshift(res.document!);
      create.reset();
      render();
    });
  });

  render();
  root.replaceChildren(h("h2", {}, `Documents in ${project.name}`), create, list);
}
