-- A slot's site is a site: say so directly, not only through (site, service) in site_services,
-- so that tools reading the schema see the link.
ALTER TABLE slots ADD CONSTRAINT slots_site_id_fkey FOREIGN KEY (site_id) REFERENCES sites (id);
