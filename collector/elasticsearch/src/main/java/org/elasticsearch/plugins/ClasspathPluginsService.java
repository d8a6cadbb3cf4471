/*
 * hapa-telemetry: a PluginsService that adds plugins given as classes on the classpath to
 * whatever the (empty) modules and plugins directories hold. Lives in org.elasticsearch.plugins
 * for the package-private helpers it uses.
 */
package org.elasticsearch.plugins;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;

import org.elasticsearch.Version;
import org.elasticsearch.action.admin.cluster.node.info.PluginsAndModules;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.jdk.ModuleQualifiedExportsService;

public final class ClasspathPluginsService extends PluginsService {

    private final List<LoadedPlugin> all;
    private final PluginsAndModules allInfo;

    public ClasspathPluginsService(Settings settings, Environment env,
            Collection<Class<? extends Plugin>> classpathPlugins) {
        super(settings, env.configFile(), env.modulesFile(), env.pluginsFile());
        List<LoadedPlugin> extra = new ArrayList<>();
        for (Class<? extends Plugin> cls : classpathPlugins) {
            Plugin instance = loadPlugin(cls, settings, env.configFile());
            PluginDescriptor descriptor = new PluginDescriptor(cls.getName(), "classpath plugin", "NA",
                    Version.CURRENT.toString(), Integer.toString(Runtime.version().feature()),
                    cls.getName(), null, List.of(), false, false, false, false);
            extra.add(new LoadedPlugin(descriptor, instance));
        }
        loadExtensions(extra);
        List<PluginRuntimeInfo> infos = new ArrayList<>(super.info().getPluginInfos());
        extra.forEach(p -> infos.add(new PluginRuntimeInfo(p.descriptor())));
        List<LoadedPlugin> combined = new ArrayList<>(extra);
        combined.addAll(super.plugins());
        this.all = List.copyOf(combined);
        this.allInfo = new PluginsAndModules(infos, super.info().getModuleInfos());
    }

    @Override
    protected List<LoadedPlugin> plugins() {
        return all;
    }

    @Override
    public PluginsAndModules info() {
        return allInfo;
    }

    @Override
    protected void addServerExportsService(Map<String, List<ModuleQualifiedExportsService>> exports) {
        // classpath mode: no module layers, nothing to export
    }
}
